from authload.cli import main

raise SystemExit(main())
