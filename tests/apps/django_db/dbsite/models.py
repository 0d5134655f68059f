from django.db import models


class Row(models.Model):
    """One row written by a request, tagged with the request's own key."""
    tag = models.CharField(max_length=64, db_index=True)
    n = models.IntegerField(default=0)
