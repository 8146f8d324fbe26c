"""`python -m simpo_live` is the `simpo-live` command (so `torchrun -m simpo_live train` works)."""

from simpo_live.cli import main

if __name__ == "__main__":
    main()
