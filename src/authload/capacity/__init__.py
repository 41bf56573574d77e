"""`authload capacity`: find the highest arrival rate of a scenario's traffic mix that meets
its SLOs, or (``closed``) measure throughput over steps of users and fit the Universal
Scalability Law.

The modules:

- :mod:`~authload.capacity.options`: the settings, refused when unusable, and their defaults;
- :mod:`~authload.capacity.search`: the next level, by an open or a closed-model strategy;
- :mod:`~authload.capacity.stops`: what ends a search from outside it (budget, failed step);
- :mod:`~authload.capacity.driver`: runs the steps and keeps the books;
- :mod:`~authload.capacity.document`: ``capacity.json``'s content, and the lines printed;
- :mod:`~authload.capacity.judge`: a step judged on its measured window;
- :mod:`~authload.capacity.curve`: the knee and the first SLO to break;
- :mod:`~authload.capacity.usl`: the Universal Scalability Law fit;
- :mod:`~authload.capacity.page`: ``capacity.html``.

The package imports none of them: the maths pulls in pandas and SciPy, which what only reads
a capacity run directory (the run history, the verdict formats) should not pay for. The files
of a capacity run directory are named in :mod:`authload.rundir.files`.
"""
