from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


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


urlpatterns = [
    path("", index),
    path("hello/<str:name>", hello),
    path("form", form),
]
