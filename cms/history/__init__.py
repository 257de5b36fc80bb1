"""History: every write through the store becomes one git commit, made in-process with libgit2.

actor.py   who is writing (an API key, a person at the CLI): set where a request or command
           starts, read where the commit is made
git.py     the commit itself: a tree built from HEAD plus the written files, a compare-and-swap
           on the branch, the git index kept in step, a hand edit committed first on its own
"""
