"""The device's page (``GET /``): the live annotated stream, the faces in the newest frame,
recent face events with their crops, FPS, memory and the SoC's temperature, and a form to
try ``POST /detect``. One self-contained HTML document (inline CSS and JS, no external
asset: the device may have no internet, and a page that loads nothing foreign leaks
nothing). It polls ``/status`` (2 s), ``/detections`` (1 s) and ``/events`` (3 s); with a
token required, the session cookie (:mod:`.auth`) lets its requests in.
"""

from __future__ import annotations

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeface</title>
<style>
:root{color-scheme:dark}
body{margin:0;background:#111;color:#ddd;font:14px/1.4 system-ui,sans-serif}
header{display:flex;flex-wrap:wrap;gap:1.2em;align-items:baseline;padding:.6em 1em;
 background:#1c1c1c;border-bottom:1px solid #333}
header h1{font-size:1.1em;margin:0;color:#fff}
.stat b{color:#fff;font-variant-numeric:tabular-nums}
main{display:grid;grid-template-columns:minmax(0,3fr) minmax(16em,1fr);gap:1em;padding:1em}
@media (max-width:800px){main{grid-template-columns:1fr}}
section{background:#181818;border:1px solid #2a2a2a;border-radius:6px;padding:.7em}
h2{font-size:1em;margin:0 0 .5em;color:#fff}
#stream{display:block;width:100%;background:#000;min-height:120px}
#nocam{padding:2em;color:#999}
ul{list-style:none;margin:0;padding:0}
#faces li{padding:.2em 0;border-bottom:1px solid #262626;font-variant-numeric:tabular-nums}
#events li{display:flex;gap:.6em;align-items:center;padding:.3em 0;
 border-bottom:1px solid #262626}
#events img{width:56px;height:56px;object-fit:cover;border-radius:4px;background:#000}
.type{font-weight:600}.start{color:#6c6}.end{color:#c66}.update{color:#69c}
small,.muted{color:#888}
#result{white-space:pre-wrap;max-height:16em;overflow:auto;font:12px monospace}
canvas{max-width:100%;display:block;margin-top:.5em}
</style></head>
<body>
<header><h1>edgeface</h1>
<span class="stat">FPS <b id="fps">-</b></span>
<span class="stat">frames <b id="frames">-</b></span>
<span class="stat">gated <b id="gated">-</b></span>
<span class="stat">faces <b id="nfaces">-</b></span>
<span class="stat">RSS <b id="rss">-</b> MB</span>
<span class="stat">SoC <b id="temp">-</b> &deg;C</span>
<span class="stat">API <b id="api">-</b></span>
</header>
<main>
<div>
<section id="live"><h2>Live</h2><img id="stream" alt="live annotated stream"
 src="/stream.mjpg"><div id="nocam" hidden>No camera: this is <code>edgeface serve</code>.
 Send images to <code>POST /detect</code> (form on the right, or see
 <a href="/openapi.json">/openapi.json</a>).</div></section>
</div>
<div>
<section><h2>Faces now <small id="facecount"></small></h2><ul id="faces"></ul></section>
<section style="margin-top:1em"><h2>Recent events</h2><ul id="events">
<li class="muted">none yet</li></ul></section>
<section style="margin-top:1em"><h2>Try the API</h2>
<form id="upload"><input type="file" id="files" accept="image/jpeg,image/png,image/bmp"
 multiple> <button>Detect</button></form><canvas id="canvas" hidden></canvas>
<div id="result" class="muted"></div></section>
</div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const text = (el, s) => { el.textContent = s; };
let camera = true;
async function json(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (r.status === 401) { location.reload(); throw new Error("unauthorized"); }
  return r.ok ? r.json() : null;
}
async function status() {
  try {
    const s = await json("/status");
    if (!s) return;
    text($("fps"), s.fps.toFixed(1)); text($("frames"), s.frames);
    text($("gated"), s.gated_frames); text($("rss"), s.rss_mb.toFixed(0));
    text($("temp"), s.soc_c == null ? "n/a" : s.soc_c.toFixed(1));
    text($("api"), s.api ? `${s.api.done} done, ${s.api.queued} queued` : "off");
    if (!s.camera && camera) {
      camera = false; $("stream").hidden = true; $("stream").src = ""; $("nocam").hidden = false;
    }
  } catch (e) {}
}
async function faces() {
  if (!camera) return;
  try {
    const d = await json("/detections");
    const list = $("faces"); list.replaceChildren();
    const n = d ? d.faces.length : 0;
    text($("nfaces"), n); text($("facecount"), d ? `(${n} in frame ${d.frame})` : "");
    for (const [i, f] of (d ? d.faces : []).entries()) {
      const li = document.createElement("li"); li.className = "face";
      const b = f.box.map((v) => Math.round(v)).join(", ");
      text(li, `#${i + 1}  score ${f.score.toFixed(2)}  box [${b}]` +
        (f.track_id != null ? `  track ${f.track_id}` : ""));
      list.append(li);
    }
  } catch (e) {}
}
async function events() {
  try {
    const ev = await json("/events");
    if (!ev || !ev.length) return;
    const list = $("events"); list.replaceChildren();
    for (const e of ev) {
      const li = document.createElement("li");
      if (e.crop) { const img = document.createElement("img"); img.src = e.crop;
        img.alt = "face"; li.append(img); }
      const d = document.createElement("div");
      const t = document.createElement("span"); t.className = "type " + e.type;
      text(t, e.type);
      const info = document.createElement("small");
      text(info, ` track ${e.track_id} \\u00b7 ${new Date(e.ts * 1000).toLocaleTimeString()}` +
        ` \\u00b7 score ${e.score.toFixed(2)}`);
      d.append(t, info); li.append(d); list.append(li);
    }
  } catch (e) {}
}
$("upload").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const files = $("files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("image", f, f.name);
  text($("result"), "detecting...");
  try {
    const r = await fetch("/detect", {method: "POST", body: form});
    const body = await r.json();
    text($("result"), JSON.stringify(body, null, 1));
    if (r.ok) draw(files[0], body.results[0]);
  } catch (e) { text($("result"), String(e)); }
});
function draw(file, rec) {
  const img = new Image();
  img.onload = () => {
    const c = $("canvas"); c.width = img.width; c.height = img.height; c.hidden = false;
    const g = c.getContext("2d"); g.drawImage(img, 0, 0);
    g.lineWidth = Math.max(2, img.width / 300); g.strokeStyle = "#0f0";
    for (const f of rec.faces) {
      const [x1, y1, x2, y2] = f.box; g.strokeRect(x1, y1, x2 - x1, y2 - y1);
    }
    URL.revokeObjectURL(img.src);
  };
  img.src = URL.createObjectURL(file);
}
status(); faces(); events();
setInterval(status, 2000); setInterval(faces, 1000); setInterval(events, 3000);
</script>
</body></html>
"""

LOGIN = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgeface: token required</title>
<style>body{background:#111;color:#ddd;font:15px/1.5 system-ui,sans-serif;margin:3em}
code{background:#222;padding:.1em .3em}</style></head>
<body><h1>Token required</h1>
<p>This device wants its API token. Open <code>/?token=&lt;EDGEFACE_API_TOKEN&gt;</code>
once: the page then keeps a session cookie and removes the token from the address bar.</p>
</body></html>
"""
