"""The web app (issue 17): browse the schema, query, open series and ingest in a browser.

Gradio, because a Hugging Face Space runs a Gradio app as it is and no JavaScript is written
here. `ui.build` makes the page, `state.AppState` is the one warm session behind it, `guard`
and `uploads` are what a web page is allowed to do. Gradio's analytics are switched off
before it is imported: the app never contacts a hub or share server.
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
