from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .models import Note


def index(request):
    return HttpResponse("Hello from Django", content_type="text/plain")


def hello(request, name):
    return HttpResponse("Hello, %s!" % name, content_type="text/plain")


@csrf_exempt
def form(request):
    if request.method == "POST":
        return JsonResponse({"name": request.POST.get("name", ""),
                             "tags": request.POST.getlist("tag")})
    return HttpResponse('<form method="post"><input name="name"></form>')


@csrf_exempt
def notes(request):
    """POST text=... stores a note; both methods answer the latest ten. Each core has its own
    database connection, as each thread would under a threaded server."""
    if request.method == "POST":
        Note.objects.create(text=request.POST.get("text", "")[:200])
    latest = Note.objects.order_by("-id")[:10]
    return JsonResponse({"count": Note.objects.count(),
                         "latest": [{"id": n.id, "text": n.text} for n in latest]})


urlpatterns = [
    path("", index),
    path("hello/<str:name>", hello),
    path("form", form),
    path("notes", notes),
]
