"""Lightning callbacks that lightyard adds to what Lightning ships."""
