from kizuna.cli import app

app(prog_name="kizuna")
