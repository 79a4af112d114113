"""Stage 1, data: the task kinds and their scorer (:mod:`.tasks`), model sources (:mod:`.sources`), loading a
checkpoint (:mod:`.models`) and sampling from it (:mod:`.sampling`). Imports only :mod:`harness.core`."""
