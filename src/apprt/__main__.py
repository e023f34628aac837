from apprt.cli import main

main()
