from hw4.cli import exit_now, main

try:
    main()
except SystemExit as stop:
    exit_now(stop.code)
exit_now(0)
