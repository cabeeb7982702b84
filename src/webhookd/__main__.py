from webhookd.cli import app

app(prog_name="webhookd")
