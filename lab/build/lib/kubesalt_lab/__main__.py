from kubesalt_lab.cli import main

raise SystemExit(main())
