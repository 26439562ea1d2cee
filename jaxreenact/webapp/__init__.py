"""The local web demo behind `python -m jaxreenact.app`: upload a face and a driving clip, reenact, and move each
learned direction with a slider.

* `service`: the app's state and actions without HTTP: the networks loaded once, sessions with a temporary folder
  each, the source cache, bounded and cancellable jobs with progress, the reenactment (`inference.reenactment.run`)
  and the edit actions (`inference.editing`, one jitted `inference.frames.render_dp` call of one frame per slider
  move).
* `sessions`: a session, a job that can be stopped, the progress bars, the checks of a request's numbers/booleans.
* `uploads`: what an upload is, read from its header, and the pixel/frame caps checked before anything decodes it.
* `server`: a Starlette application on uvicorn for the page under `static/` (plain HTML, CSS and JavaScript,
  nothing fetched from elsewhere) and the JSON API the page calls, with the request guards and timeouts.

Why Starlette + uvicorn and not Gradio: the page and its browser test stay as they are, uvicorn does the HTTP
(parsing, backlog, timeouts, graceful shutdown) and Starlette streams files with byte ranges, for a few MB of
dependencies; Gradio would replace the page and bring a large dependency tree. See docs/webdemo.md.
"""
