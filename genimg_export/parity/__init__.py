"""The parity suite: the same seeded inputs through every backend, compared with
the reference (``run``), the inputs it draws (``inputs``), the metrics it applies
(``metrics``), each task's own quality figure (``task``) and the picture (``report``).
"""

from genimg_export.parity.run import run_parity

__all__ = ["run_parity"]
