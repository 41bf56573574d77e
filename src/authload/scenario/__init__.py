"""The scenario language: the model of a scenario (:mod:`.model`), its YAML file read with
errors that name the file, line and field (:mod:`.loader`), the SLO grammar
(:mod:`.slo_grammar`) and the distributions of think times and sessions
(:mod:`.distributions`)."""
