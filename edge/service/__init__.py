"""Run edgeface as a systemd service: ``units`` renders the unit, sysusers.d and tmpfiles.d
files from the shipped templates; ``config_edit`` edits and validates the service config;
``checks`` tests the model and this machine (service user access, memory cgroup, systemd,
root); ``layout`` holds the on-device paths of a system or user install, or of one camera's
instance ``edgeface@NAME.service``; ``cameras`` what one camera's install must know about the
others; ``plan`` is the list of file steps and commands an install runs; ``install`` and
``uninstall`` plan those from these parts. Nothing is changed until a plan is executed.
"""
