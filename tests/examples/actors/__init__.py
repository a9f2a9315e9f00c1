"""Tests of the example actors."""
