"""Data generators: synthetic training data written straight into standard-layout LMDBs.

A wing of the package: these modules import the core (``alphabet``, ``data``, ``audio``, ...)
and the music wing; the core never imports them. Each has a thin command line in ``datasets/``.

* ``text``: word images in many fonts, colours and backgrounds (``datasets/synth_text.py``);
* ``colors``: text/background colour pairs clustered from real crops (``datasets/crop_colors.py``);
* ``perturbed``: strongly perturbed copies of real crops that a teacher still reads (``datasets/teacher_copies.py``);
* ``stitched``: real crops cut between their letters and joined again, StackMix (``datasets/stitch_crops.py``);
* ``speech``: spoken digits and words by espeak-ng (``datasets/synth_speech.py``);
* ``digits``: spoken digit strings from real single-digit recordings (``datasets/concat_digits.py``);
* ``clips``: labelled clips for audio classification and tagging: FSDD digits or speakers, espeak-ng
  digit words, yes/no words, digit mixtures over noise (``datasets/audio_clips.py``);
* ``music``: engraved single-staff incipits, Verovio + cairosvg (``datasets/synth_music.py``).
* ``lilypond``: a second staff engraver, Debian's ``lilypond``, many staves per process.

Importing this package imports none of them; their optional dependencies (fontTools, wordfreq,
verovio, cairosvg, music21, soundfile) are imported where they are used.
"""
