"""The verdict in the formats pipelines read: JUnit XML (``--junit``) and a Markdown summary
(``--summary-md``, also the GitHub Actions job summary). Pure functions from ``summary.json``,
a comparison or ``capacity.json`` to :class:`~authload.verdict_formats.cases.Suite` values
(``cases``, ``compare_cases``, ``capacity_cases``), and from those to text (``junit``,
``markdown``); ``outputs`` writes the files."""
