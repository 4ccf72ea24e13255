"""Systems the validation measures, each implementing :class:`minimax.validate.target.Target`."""
