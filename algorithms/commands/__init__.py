"""Run-level commands: what a researcher does with runs besides training them (``evaluate`` a checkpoint again,
``collect`` runs into an offline dataset, ``export-latents``, ``validate`` a learning check). Each reads run
folders through the run life cycle's modules (``algorithms/common``) and writes its own files."""
