import sys

if sys.argv[1:2] == ["grade"]:
    from autograder.sandbox.prefork import reexec

    reexec(sys.argv)  # returns only if the grade cannot share torch with its fork server

from autograder.cli import main

sys.exit(main())
