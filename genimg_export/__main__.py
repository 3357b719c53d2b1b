from genimg_export.cli import main

main()
