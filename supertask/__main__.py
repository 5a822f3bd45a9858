from supertask.cli import main

main()
