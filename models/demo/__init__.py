"""Training and scoring on the demo's live-cut windows.

``app.demo_data`` renders simulated sessions and cuts them with the real aligner;
the modules here turn those windows into tensors, train the three demo models
on them and score them: ``concat_fusion`` (the interim model, its own loop),
``hi_moe`` and ``mco`` (``models.training.Task`` s for the shared loop). The
command lines that drive them live in ``app/train_demo*.py``.
"""
