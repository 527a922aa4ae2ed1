"""`lightning.pytorch.loops`: fastlight's loops live in fastlight.trainer (fit_loop.py, evaluation.py, with Lightning's
loop attributes as views: loop_views.py); this package holds the data fetchers the loops use (fetchers.py)."""
