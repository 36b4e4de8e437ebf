"""``python -m console``: the DPO console (see console.server)."""

from console.server import main

main()
