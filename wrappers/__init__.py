"""Wrappers that change one thing each: SEELE hints, MRT budgets, numeric views."""
