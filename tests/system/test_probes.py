"""Cameras among /dev/video* (sysfs + VIDIOC_QUERYCAP), the memory cgroup, the Jetson power
mode and the command runner, on the fixture boards."""

from __future__ import annotations

import sys

import pytest
from system_boards import BOARDS, querycap_for

from edgeface.system import commands, nvpmodel
from edgeface.system.cameras import (
    CAP_DEVICE_CAPS,
    CAP_META_CAPTURE,
    V4l2Caps,
    classify,
    querycap,
    video_nodes,
)
from edgeface.system.cgroups import cmdline_memory_disabled, memory_controller


def kinds(board, query=None):
    return {n.node: n.kind for n in video_nodes(BOARDS / board, query or querycap_for(board))}


def test_pi4_finds_the_webcam_among_soc_nodes():
    assert kinds("raspberry-pi-4") == {
        "/dev/video0": "csi", "/dev/video1": "csi", "/dev/video2": "camera",
        "/dev/video3": "metadata", "/dev/video10": "codec", "/dev/video13": "isp",
        "/dev/video19": "codec"}
    cam = next(n for n in video_nodes(BOARDS / "raspberry-pi-4", querycap_for("raspberry-pi-4"))
               if n.kind == "camera")
    assert (cam.card, cam.driver, cam.bus_info) == (
        "HD Pro Webcam C920", "uvcvideo", "usb-0000:01:00.0-1.3")


def test_pi5_pisp_capture_node_is_not_a_camera():
    """/dev/video24 (pispbe-output0) has Video Capture Multiplanar in its device_caps."""
    nodes = {n.node: n for n in video_nodes(BOARDS / "raspberry-pi-5",
                                            querycap_for("raspberry-pi-5"))}
    assert nodes["/dev/video24"].device_caps & 0x1000
    assert nodes["/dev/video24"].kind == "isp"
    assert [n.kind for n in nodes.values()] == ["csi", "codec", "isp", "isp"]


def test_orin_vi_node_is_a_csi_sensor():
    assert kinds("jetson-orin-nano") == {"/dev/video0": "csi"}


def test_without_permission_sysfs_still_tells_uvc_nodes_apart():
    def denied(path):
        raise PermissionError(13, "Permission denied")
    nodes = video_nodes(BOARDS / "raspberry-pi-4", denied)
    by_node = {n.node: n for n in nodes}
    assert by_node["/dev/video2"].kind == "camera" and by_node["/dev/video3"].kind == "metadata"
    assert by_node["/dev/video13"].kind == "isp"  # the sysfs driver link names the ISP
    assert by_node["/dev/video2"].error == "Permission denied"


def test_uvc_metadata_node_needs_device_caps():
    """Its device-wide ``capabilities`` list VIDEO_CAPTURE; only device_caps is the node's."""
    meta = V4l2Caps("uvcvideo", "C920", "usb-1", CAP_DEVICE_CAPS | 0x04A00001,
                    0x04A00000)
    assert meta.capabilities & 0x1 and classify("uvcvideo", meta.node_caps, 1) == "metadata"
    old = V4l2Caps("uvcvideo", "C920", "usb-1", 0x04000001, 0)  # no DEVICE_CAPS flag
    assert old.node_caps == 0x04000001
    assert classify(None, CAP_META_CAPTURE, None) == "metadata"
    assert classify(None, 0x2, None) == "output" and classify(None, 0, None) == "unknown"
    assert classify("vivid", 0x8000 | 0x1, 0) == "codec"


def test_no_video4linux_no_nodes():
    assert video_nodes(BOARDS / "x86-64-vm", querycap) == []


def test_querycap_on_a_non_v4l2_device_raises_oserror():
    with pytest.raises(OSError):
        querycap("/dev/null")


def test_a_sysfs_node_without_a_dev_node(tmp_path):
    d = tmp_path / "sys/class/video4linux/video5"
    d.mkdir(parents=True)
    (d / "name").write_text("gone\n")
    (node,) = video_nodes(tmp_path, querycap)
    assert node.error == "no device node" and node.kind == "unknown"


@pytest.mark.parametrize("board, enabled, fix", [
    ("raspberry-pi-4", False, "append ' cgroup_enable=memory' to the single line in "
                              "/boot/firmware/cmdline.txt and reboot"),
    ("raspberry-pi-5", True, None),  # enabled though /proc/cgroups (6.12) lists no memory
    ("jetson-orin-nano", True, None),
    ("x86-64-vm", True, None),  # cgroup v1: /proc/cgroups
])
def test_memory_controller(board, enabled, fix):
    mc = memory_controller(BOARDS / board)
    assert mc.enabled is enabled and mc.fix == fix


def test_memory_controller_from_the_command_line_alone(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("console=tty1 cgroup_disable=memory\n")
    mc = memory_controller(tmp_path)
    assert mc.enabled is False and mc.evidence.startswith("/proc/cmdline")
    assert "kernel command line" in mc.fix  # no cmdline.txt below this root
    (tmp_path / "proc/cmdline").write_text("console=tty1\n")
    assert memory_controller(tmp_path).enabled is None


@pytest.mark.parametrize("cmdline, disabled", [
    ("cgroup_disable=memory", True),
    ("cgroup_disable=memory cgroup_enable=memory", False),  # cmdline.txt comes after the DTB
    ("cgroup_enable=memory cgroup_disable=memory", True),
    ("cgroup_disable=cpuset,memory", True),
    ("cgroup_memory=1", None),  # not an option
    ("", None),
])
def test_cmdline_memory_disabled(cmdline, disabled):
    assert cmdline_memory_disabled(cmdline) is disabled


def test_power_mode_from_status_and_conf():
    assert nvpmodel.power_mode(BOARDS / "jetson-orin-nano") == {
        "id": 0, "name": "15W", "source": "status"}


def test_power_mode_asks_nvpmodel_when_the_files_do_not_say(tmp_path):
    calls = []

    def run(argv, timeout):
        calls.append(list(argv))
        return "NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN_SUPER\n2\n"

    assert nvpmodel.power_mode(tmp_path, run, query=True) == {
        "id": 2, "name": "MAXN_SUPER", "source": "nvpmodel -q"}
    assert calls == [["nvpmodel", "-q"]]
    assert nvpmodel.power_mode(tmp_path, lambda a, t: None, query=True) is None
    assert nvpmodel.power_mode(tmp_path, run) is None  # a fixture root never runs commands


def test_power_mode_id_without_a_name(tmp_path):
    (tmp_path / "var/lib/nvpmodel").mkdir(parents=True)
    (tmp_path / "var/lib/nvpmodel/status").write_text("pmode:0003 fmode:cool\n")
    assert nvpmodel.power_mode(tmp_path) == {"id": 3, "name": None, "source": "status"}


def test_run_quiet_never_raises_and_remembers_missing_tools():
    assert commands.run_quiet([sys.executable, "-c", "print('x')"]) == "x\n"
    assert commands.run_quiet([sys.executable, "-c", "raise SystemExit(3)"]) is None
    assert commands.run_quiet([sys.executable, "-c", "import time; time.sleep(5)"], 0.2) is None
    missing = "edgeface-no-such-tool"
    assert commands.run_quiet([missing]) is None and missing in commands._MISSING
    assert commands.run_quiet([]) is None
