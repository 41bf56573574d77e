"""The run directory: its file names (:mod:`.files`), the records and their merge
(:mod:`.records`), the JSON files (:mod:`.jsonfiles`) and the events (:mod:`.events`)."""
