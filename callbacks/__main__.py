"""``python -m callbacks`` runs the delivery worker (same as ``python -m callbacks.worker``)."""

from .worker import main

main()
