from edi.cli import main

# Guarded so that importing this module (tools, spawned workers) never starts the CLI.
if __name__ == "__main__":
    main()
