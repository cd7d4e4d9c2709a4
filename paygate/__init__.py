"""The composition root and the processes: :mod:`paygate.services` wires every service from the settings;
:mod:`paygate.cli` is the ``paygate`` command, :mod:`paygate.worker` the worker process,
:mod:`paygate.demo` the demo, :mod:`paygate.migrate` the migrations. The web app (:mod:`app`) uses the same
composition root.
"""
