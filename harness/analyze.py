"""``python -m harness.analyze`` = ``harness analyze``: kept so the documented module commands work (code: :mod:`harness.launch.analyze`)."""

if __name__ == "__main__":
    from harness.launch.analyze import main

    main()
