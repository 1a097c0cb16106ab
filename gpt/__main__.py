"""`python -m gpt` is the `gpt` command (and what `torchrun -m gpt train` runs)."""

from gpt.cli import main

if __name__ == "__main__":
    main()
