from supertask.entry import main

main()
