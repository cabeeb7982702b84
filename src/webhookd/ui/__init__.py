"""The web pages served by the API process: the operator console at ``/ui`` (server-rendered
Jinja2 templates, htmx and Pico CSS vendored under ``static/vendor``)."""
