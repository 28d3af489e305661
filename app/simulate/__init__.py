"""Write DEAP, DREAMER and SEE data sets, in their own file formats, from virtual participants.

    affectlab simulate deap|dreamer|see --out DIR [--subjects N] [--seed S]
                       [--trials T] [--trial-seconds S]      # or: python -m app.simulate ...

Every training and evaluation path can then run here end to end on files that
the real loaders (``models.data``) read exactly as they read the real ones.
Each subject is one ``VirtualParticipant``; its sensors are the ones the live
simulated drivers use, rendered by sample index (no clock), and every label
comes from its latent state:

- DEAP: a trial's onset is the start of one of the participant's emotional
  episodes (the video elicits a new state; mean episode length = trial length),
  preceded by 3 s of baseline. Ratings (1-9, two decimals) are the mean latent
  valence, arousal, dominance and liking over the trial. 40 channels at 128 Hz
  in DEAP's order: the 32 EEG channels, hEOG / vEOG (from the participant's
  gaze and blinks), zEMG (zygomaticus: follows the smile of the happiness
  expression) / tEMG (trapezius: tension with arousal), GSR (skin conductance,
  uS), respiration, plethysmograph, temperature (degC). float64, like the originals.
  ``sXX.dat`` is a protocol-2 pickle that names only numpy's array
  reconstructor, ``numpy.ndarray`` and ``numpy.dtype``, with raw data as
  Python 2 byte strings, as cPickle wrote DEAP's files: it loads with ``safe_pickle``.
- DREAMER: per film, a neutral baseline (61 s by default) then the film
  (``trial_seconds`` x 1.0-1.5, whole seconds: films differ in length). Scores
  are the mean latent state mapped from 1-9 to 1-5 and rounded. EEG is the
  participant's EEG at the 14 Emotiv sites plus a per-channel DC level around
  4200 uV as Emotiv headsets record; ECG has two leads of the same heart (the
  second 0.75 x the first with its own noise) at 256 Hz.
- SEE: for every subject, lighting and emotion, ``trials`` sequences (takes),
  each one episode of that expression from its onset (the face morphs in),
  ``trial_seconds`` long on average, 18-131 frames, at 30 fps, rendered by the
  virtual DAVIS346 under that lighting. Event frames accumulate the emulated
  events of each 33 ms frame interval: grey 128 plus 64 per net ON event, minus
  64 per net OFF event, clipped, as 8-bit grey JPEG. The label is the majority
  latent expression over the sequence. About a third of the sequences (every
  third, in order) are "testing", the rest "training": within subject, as SEE.
  Emotion folders use SEE's spelling (``neutraL``).

``simulate`` never writes over a file that exists (real data sets live in such folders
too). The package: ``cli`` (the command), ``physiology`` (DEAP and DREAMER), ``see``,
``common`` (what they share).
"""

from app.simulate.cli import build_parser, main

__all__ = ["build_parser", "main"]
