"""Reports: the run's results, the HTML extras and matrix, the compliance JSON, the terminal table."""
