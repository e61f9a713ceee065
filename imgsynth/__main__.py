from imgsynth.cli import main

main()
