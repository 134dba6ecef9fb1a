"""`taskmem-viewer`: a local web app to look at a robot's memory (timeline with keyframes,
ask, task log, adapters and Phase Two rounds, evaluation reports). Read-only on the store.

FastAPI + Jinja2 (server-rendered, no JavaScript): see ``app.py`` for why. Needs the
``viewer`` extra; nothing here is imported by the core.
"""
