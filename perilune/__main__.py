from perilune.cli import main

main()
