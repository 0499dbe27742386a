"""Stage 1: text -> Spec (parse, validate, rules, fmt). Imports neither numpy nor PyTensor."""
