"""``python -m harness.bench`` = ``harness bench``: kept so the documented module commands work (code: :mod:`harness.launch.bench`)."""

if __name__ == "__main__":
    from harness.launch.bench import main

    main()
