"""The local web demo behind `python -m jaxreenact.app`: upload a face and a driving clip, reenact, and move each
learned direction with a slider.

* `service`: the app's state and actions without HTTP: the networks loaded once, sessions with a temporary folder
  each, the source cache, jobs with progress, the reenactment (`inference.reenactment.run`) and the edit actions
  (`inference.editing`, one jitted `inference.frames.render_dp` call of one frame per slider move).
* `server`: a small standard-library HTTP server (`http.server`) for the page under `static/` (plain HTML, CSS and
  JavaScript, nothing fetched from elsewhere) and the JSON API the page calls.

Why not Gradio: the registry's Gradio (6.31) pins pillow<13, so installing it would downgrade the project's Pillow,
and it brings some 37 packages (FastAPI, pandas, huggingface_hub, ...), its own upload cache outside our session
folders and web fonts from the internet; the standard library does what the demo needs with none of that.
"""
