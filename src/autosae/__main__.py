from autosae.cli import main

main()
