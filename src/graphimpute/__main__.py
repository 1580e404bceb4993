from graphimpute.cli import main

main()
