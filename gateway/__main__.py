"""`python -m gateway` is the `dni-gateway` command."""

from gateway.cli import main

raise SystemExit(main())
