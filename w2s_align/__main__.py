"""`python -m w2s_align ...` (the form `accelerate launch -m w2s_align` uses)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
