"""``python -m harness.run`` = ``harness train``: kept so the documented module commands work (code: :mod:`harness.launch.run`)."""

if __name__ == "__main__":
    from harness.launch.run import cli

    cli()
