from edi.cli import main

main()
