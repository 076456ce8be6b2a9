"""Warm start: a per-user server per bundle hash that forks task tries (docs/warm-start.md).

``trio-coord warm BUNDLE`` starts one (:mod:`.command`); the packed bundle's launcher
hands it a try (``trio_coord/bundle/launcher.py``); :mod:`.server` accepts and forks,
:mod:`.child` turns the fork into the process a cold start would have been, and
:mod:`.wire` and :mod:`.paths` hold what the three sides must agree on.
"""
