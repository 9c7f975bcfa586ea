from hw4.cli import main

main()
