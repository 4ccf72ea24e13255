"""``python -m minimax.sweep.aggregate ...``: runs :func:`minimax.sweep.aggregate_cli.main`.

This file is only the ``python -m`` entry point. Imported, a submodule named ``aggregate``
would replace the function :func:`minimax.sweep.aggregate` on its package, so on import it
hands the import system the function instead of itself (the import system binds whatever
``sys.modules`` holds under the module's name once it has run): ``minimax.sweep.aggregate``
stays the function either way.
"""

import sys

if __name__ == "__main__":
    from minimax.sweep.aggregate_cli import main

    sys.exit(main())
else:
    from minimax.sweep._aggregate import aggregate as _function

    sys.modules[__name__] = _function  # type: ignore[assignment]
