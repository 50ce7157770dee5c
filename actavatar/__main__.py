"""`python -m actavatar ...` is the same as the `actavatar` console script."""

from actavatar.cli import main

raise SystemExit(main())
